# Per cluster: how many stars each filter gave, and their magnitude range.


# A seconds-long table: run where the workflow runs, not as a cluster job.
localrules:
    summary,


rule summary:
    input:
        catalogs=cluster_catalogs,
        curves=cluster_completeness_curves,
    output:
        report(
            paths.SUMMARY,
            caption="../report/summary.rst",
            category="Summaries",
            labels={"cluster": "{cluster}", "figure": "summary"},
        ),
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
