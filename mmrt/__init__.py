"""mmrt: multimodal inference runtime for edge sensor rigs.

The core package holds what every part shares and must stay free of torch:
modality names and subsets, metrics, the data manifest format, array-level
preprocessing, and the command line.
"""

__version__ = "0.1.0"
