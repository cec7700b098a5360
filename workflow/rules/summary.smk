# Per cluster: how many stars each filter gave, and their magnitude range.


rule summary:
    input:
        unpack(cluster_catalogs),
    output:
        report(
            "results/summary/{cluster}.tsv",
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
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/summary.py"
