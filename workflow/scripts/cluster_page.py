"""Snakemake adapter: a cluster on one self-contained HTML page (composite, CMDs, summary table)."""

import logging

from astropy.table import Table

from clusterphot.logs import clean_failure, log_to
from clusterphot.summary import cluster_page_html, write_cluster_page

log_to(snakemake.log[0])
with clean_failure():
    cluster = snakemake.wildcards.cluster
    summary = Table.read(snakemake.input.summary, format="ascii.tab")
    cmds = list(zip(snakemake.params.colours, snakemake.input.cmds, strict=True))
    write_cluster_page(cluster_page_html(cluster, summary, snakemake.input.composite, cmds), snakemake.output[0], cluster)
    logging.getLogger("clusterphot").info("wrote %s: the composite, %d CMDs and the summary of %d filters",
                                          snakemake.output[0], len(cmds), len(summary))
