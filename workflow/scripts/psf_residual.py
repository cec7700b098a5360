"""Snakemake adapter: a frame measured with PSF fitting, less the fit's model (stars and sky)."""

from astropy.table import Table

from clusterphot.config import FrameSettings
from clusterphot.logs import clean_failure, log_to
from clusterphot.psfio import frame_residual

log_to(snakemake.log[0])
with clean_failure():
    settings = FrameSettings(**snakemake.params.settings)
    catalog = Table.read(snakemake.input.catalog, format="ascii.ecsv")
    frame_residual(snakemake.input.image, settings, catalog, snakemake.input.psf, snakemake.output[0],
                   snakemake.input.cosmic_rays)
