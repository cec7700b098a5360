# Per cluster: how many stars each filter gave, and their magnitude range; and the cluster on one
# page (composite, CMDs, that table), which the report opens on.


# Seconds-long tables and pages: run where the workflow runs, not as cluster jobs.
localrules:
    summary,
    cluster_page,


rule summary:
    input:
        catalogs=cluster_catalogs,
        curves=cluster_completeness_curves,
    output:
        paths.SUMMARY,
    log:
        "logs/summary/{cluster}.log",
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * int(500 + 5 * input.size_mb),
        runtime=lambda wc, input, attempt: attempt * int(2 + input.size_mb / 50),
    params:
        filters=cluster_filters,
    script:
        "../scripts/summary.py"


rule cluster_page:
    input:
        summary=paths.SUMMARY,
        composite=paths.LUPTON_PREVIEW,
        cmds=cluster_cmds,
    output:
        report(
            paths.CLUSTER_PAGE,
            caption="../report/cluster_page.rst",
            category="Cluster overviews",
            labels={"cluster": "{cluster}", "figure": "overview"},
        ),
    log:
        "logs/cluster_page/{cluster}.log",
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * 500,
        runtime=lambda wc, input, attempt: attempt * 2,
    params:
        colours=lambda wc: [f"{blue} - {red}" for blue, red in COLOURS[wc.cluster]],
    script:
        "../scripts/cluster_page.py"
