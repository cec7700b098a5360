"""Snakemake adapter: the frame with the measured stars' apertures and sky annuli, or (measured
with PSF fitting) the fitted stars and the fit's data, model and residual."""

import numpy as np
from astropy.table import Table

from clusterphot.config import FrameSettings
from clusterphot.cosmicrays import apply_cosmic_ray_mask
from clusterphot.frames import read_configured_frame
from clusterphot.logs import clean_failure, log_to
from clusterphot.plots import PSFFitView, plot_detections
from clusterphot.psfio import model_image, read_psf

log_to(snakemake.log[0])
with clean_failure():
    table = Table.read(snakemake.input.catalog, format="ascii.ecsv")
    settings = FrameSettings(**snakemake.params.settings)
    frame = read_configured_frame(snakemake.input.image, settings)
    apply_cosmic_ray_mask(frame, snakemake.input.cosmic_rays)  # drawn as masked pixels
    parameters = table.meta["parameters"]
    x, y = table["x"].value, table["y"].value
    view = None
    if "psf" in snakemake.input.keys() and table.meta.get("photometry_method") == "psf":
        psf_file = read_psf(snakemake.input.psf)
        flux = np.asarray(table["flux"], dtype=float)
        view = PSFFitView(
            model=lambda box: model_image(psf_file, x, y, flux, box) + psf_file.sky_level,
            fwhm=psf_file.psf.fwhm,
            residual_pass=np.asarray(table["found_in_pass"]) > 0,
            sky_sigma=table.meta["frame_sky"]["std"],
            unit=table.meta["image_unit"],
        )
    plot_detections(
        frame.data,
        x,
        y,
        snakemake.output[0],
        aperture_radius=parameters["aperture_radius"],
        annulus_radii=tuple(parameters["annulus_radii"]),
        title=f"{snakemake.wildcards.cluster} {snakemake.wildcards.filter}: {len(table)} stars"
        + ("" if view is None else " (PSF photometry)"),
        bad=frame.bad_pixels(),
        crop_size=snakemake.params.crop,
        psf_fit=view,
        flagged=np.asarray(table["flags"]) != 0,
    )
