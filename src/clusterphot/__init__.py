"""clusterphot: calibrated photometry of star clusters from HST frames.

The science lives in small modules:

- ``frames``      reading a FITS frame, its masks, units and keywords
- ``filters``     HST filters and detectors (pivot wavelengths, full wells)
- ``zeropoints``  AB/ST/VEGA zero points with their provenance
- ``photometry``  detection, aperture photometry, aperture correction, magnitudes
- ``catalog``     writing catalogues with units and metadata
- ``simulate``    HST-like frames of a simulated old star cluster (the demo)
- ``plots``       luminosity functions and detection maps
"""

__version__ = "0.1.0"
