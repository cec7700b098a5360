"""Snakemake adapter: the colour-magnitude diagram of one colour of one cluster."""

from astropy.table import Table

from clusterphot.logs import clean_failure, log_to
from clusterphot.quality import QualityCuts, cmd_arrays, cuts_kept
from clusterphot.plots import plot_cmd

log_to(snakemake.log[0])
with clean_failure():
    table = Table.read(snakemake.input.matched, format="ascii.ecsv")
    # the 50 per cent completeness limit of the magnitude band, from its artificial stars
    curve_path = snakemake.input.get("curve")
    m50 = None if curve_path is None else Table.read(curve_path, format="ascii.ecsv").meta.get("m50")
    cuts = QualityCuts(**snakemake.params.quality)
    blue, red, band = snakemake.wildcards.blue, snakemake.wildcards.red, snakemake.params.band
    colour, mag, colour_err, mag_err = cmd_arrays(table, blue, red, band, cuts)
    # each filter's system: a config zero point may be of its own (VEGA beside AB)
    shared = table.meta.get("magnitude_system") or "instrumental"
    systems = {name: (table.meta.get("magnitude_systems") or {}).get(name) or shared for name in (blue, red)}
    plot_cmd(
        colour,
        mag,
        colour_err,
        mag_err,
        snakemake.output[0],
        cluster=snakemake.wildcards.cluster,
        blue=blue,
        red=red,
        band=band,
        system=systems[band],
        colour_systems=(systems[blue], systems[red]),
        kept=cuts_kept(table, blue, red, cuts),
        m50=m50,
    )
