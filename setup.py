"""dicod-d2: classifier-to-detector distillation (DICOD) for detectron2.

Install with ``make setup`` (or ``pip install --no-build-isolation -e .`` once the stack in
requirements.txt and detectron2 are installed: see README.md).
"""
from setuptools import find_packages, setup

setup(
    name="dicod-d2",
    version="0.1.0",
    description="Classifier-to-detector knowledge distillation (DICOD) as a detectron2 extension",
    python_requires=">=3.10",
    packages=find_packages(include=("dicod_d2", "dicod_d2.*")),
    # configs/ is shipped inside the package through the dicod_d2/configs symlink
    package_data={"dicod_d2": ["configs/**/*.py"]},
    include_package_data=True,
    install_requires=["torch", "torchvision", "numpy", "pycocotools", "fvcore", "omegaconf"],
)
