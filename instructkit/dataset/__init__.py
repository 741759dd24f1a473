"""The dataset folder: its layout, writing it, reading it back, the manifest and the card."""
