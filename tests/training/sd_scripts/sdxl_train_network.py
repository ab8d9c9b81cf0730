"""Stand-in for kohya-ss/sd-scripts sdxl_train_network.py: the same CLI as train_network.py, SDXL names."""

from train_network import main

if __name__ == "__main__":
    main(sdxl=True)
