"""Snakemake adapter: the frame with the measured stars' apertures and sky annuli."""

from astropy.table import Table

from clusterphot.config import FrameSettings
from clusterphot.frames import bad_pixel_mask, read_frame
from clusterphot.logs import clean_failure, log_to
from clusterphot.plots import plot_detections

log_to(snakemake.log[0])
with clean_failure():
    table = Table.read(snakemake.input.catalog, format="ascii.ecsv")
    settings = FrameSettings(**snakemake.params.settings)
    frame = read_frame(snakemake.input.image, hdu=settings.hdu, plane=settings.plane)
    parameters = table.meta["parameters"]
    plot_detections(
        frame.data,
        table["x"].value,
        table["y"].value,
        snakemake.output[0],
        aperture_radius=parameters["aperture_radius"],
        annulus_radii=tuple(parameters["annulus_radii"]),
        title=f"{snakemake.wildcards.cluster} {snakemake.wildcards.filter}: {len(table)} stars",
        bad=bad_pixel_mask(frame.data),
        crop_size=snakemake.params.crop,
    )
