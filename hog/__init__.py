"""hog: run a sweep of shell jobs over GPU slots, one job folder per job."""

__version__ = "0.1.0"
