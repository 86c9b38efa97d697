"""vidreid: video-based person re-identification on one shared, tested core."""

__version__ = "0.1.0"
