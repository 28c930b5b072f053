# Training settings read by tools/lazyconfig_train_net.py (dicod_d2.engine.train_loop).
train = dict(
    output_dir="./output",
    init_checkpoint="",
    # True: load only the weights of init_checkpoint that fit the model (e.g. a backbone), logging
    # the others; False: a checkpoint of another model is an error
    init_checkpoint_partial=False,
    max_iter=90000,
    seed=0,  # RNG seed (+ process rank); a negative value picks a random one
    amp=dict(enabled=False),  # automatic mixed precision (CUDA only)
    ddp=dict(broadcast_buffers=False, find_unused_parameters=False, fp16_compression=False),
    checkpointer=dict(period=5000, max_to_keep=100),
    eval_period=5000,
    log_period=20,
    device="auto",  # "cuda" when available, else "cpu"
)
