"""clusterphot: calibrated photometry of star clusters from HST frames.

The science lives in small modules:

- ``config``      the workflow's configuration, validated once (defaults from the schema)
- ``paths``       where every output goes
- ``errors``      the errors a user can act on (one line each); anything else is a bug
- ``frames``      reading a FITS frame, its masks, units and keywords
- ``filters``     HST filters and detectors (pivot wavelengths, full wells)
- ``zeropoints``  AB/ST/VEGA zero points with their provenance
- ``photometry``  detection, aperture photometry, aperture correction, magnitudes
- ``catalog``     one frame's calibrated catalogue, with units and metadata
- ``psf``, ``psffit``, ``psfphot``  PSF photometry (in progress, not yet used by the workflow)
- ``registration``, ``matching``, ``crossmatch``  frames registered, stars matched, colours
  and the merged catalogue of a cluster
- ``quality``     the cuts of a clean colour-magnitude diagram
- ``channels``, ``composite``  colour composites
- ``simulate``    HST-like frames of a simulated old star cluster (the demo)
- ``plots``, ``summary``  figures and per-filter summaries

Importing the package, or ``config``, ``paths``, ``channels``, ``filters``, ``fingerprint``,
``outputs`` and ``errors``, stays light: building the job graph uses only these.
"""

__version__ = "0.1.0"
