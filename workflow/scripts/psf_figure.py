"""Snakemake adapter: the PSF of a frame measured with PSF fitting, and its residuals."""

from astropy.table import Table

from clusterphot.config import FrameSettings
from clusterphot.cosmicrays import apply_cosmic_ray_mask
from clusterphot.frames import read_configured_frame
from clusterphot.logs import clean_failure, log_to
from clusterphot.plots import plot_psf
from clusterphot.psfio import read_psf

log_to(snakemake.log[0])
with clean_failure():
    table = Table.read(snakemake.input.catalog, format="ascii.ecsv")
    settings = FrameSettings(**snakemake.params.settings)
    frame = read_configured_frame(snakemake.input.image, settings)
    apply_cosmic_ray_mask(frame, snakemake.input.cosmic_rays)  # its hits are no PSF's residual
    psf_file = read_psf(snakemake.input.psf)
    plot_psf(
        psf_file,
        table,
        frame.data,
        snakemake.output[0],
        snakemake.wildcards.cluster,
        snakemake.wildcards.filter,
        bad=frame.bad_pixels(),
    )
