"""The end-to-end demo (``make demo``): teacher, baseline and DICOD students, evaluation, report."""
