"""Deep Generative Replay configs.

"mnist" and "svhn" are the reference's (kuc2477/pytorch-deep-generative-replay `main.py`) for 32×32 inputs
with 1 and 3 channels; "digits" is a small config for scikit-learn's 8×8 digits, the offline default.
"""

DGR_PRESETS = {
    # Generator 3,582,849, critic 2,759,105 (true flatten), solver 6,363,658 trainable parameters.
    "mnist": dict(
        generator=dict(image_size=32, image_channels=1, noise_dim=100, channels=64, num_upsamples=3),
        critic=dict(image_size=32, image_channels=1, channels=64, num_downsamples=3),
        solver=dict(image_size=32, image_channels=1, num_classes=10, depth=5, channels=1024, reducing_layers=3),
    ),
    # MNIST padded and coloured to 32×32×3, and SVHN: generator 3,584,003, critic 2,761,153, solver 6,365,962.
    "svhn": dict(
        generator=dict(image_size=32, image_channels=3, noise_dim=100, channels=64, num_upsamples=3),
        critic=dict(image_size=32, image_channels=3, channels=64, num_downsamples=3),
        solver=dict(image_size=32, image_channels=3, num_classes=10, depth=5, channels=1024, reducing_layers=3),
    ),
    # 8×8×1 digits: the same layer pattern with two up/down-sampling stages and narrow layers, so that a
    # task trains in seconds on a CPU: generator 49,825, critic 164,705, solver 98,186 parameters. (A
    # 16-channel critic often never reaches the gradient-norm target and the generator collapses.)
    "digits": dict(
        generator=dict(image_size=8, image_channels=1, noise_dim=32, channels=16, num_upsamples=2),
        critic=dict(image_size=8, image_channels=1, channels=32, num_downsamples=2),
        solver=dict(image_size=8, image_channels=1, num_classes=10, depth=4, channels=128, reducing_layers=2),
    ),
}
