"""Running TensorFlow Serving's example clients unchanged against ``servectl serve``."""
