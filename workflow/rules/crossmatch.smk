# Per cluster: register the frames onto a reference frame, match stars one-to-one between two
# filters, and merge all filters into one catalogue.


rule register:
    input:
        catalogs=cluster_catalogs,
    output:
        paths.REGISTRATION,
    log:
        "logs/register/{cluster}.log",
    benchmark:
        "benchmarks/register/{cluster}.tsv"
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * int(500 + 20 * input.size_mb),
        runtime=lambda wc, input, attempt: attempt * int(5 + input.size_mb / 10),
    params:
        filters=cluster_filters,
        max_shift=config["catalogs"]["max_shift"],
        tolerance=config["catalogs"]["match_radius"],
        model=config["catalogs"]["transform"],
    script:
        "../scripts/register.py"


rule match_colour:
    input:
        catalogs=cluster_catalogs,
        registration=paths.REGISTRATION,
    output:
        paths.MATCHED,
    log:
        "logs/match_colour/{cluster}/{blue}-{red}.log",
    benchmark:
        "benchmarks/match_colour/{cluster}/{blue}-{red}.tsv"
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * int(500 + 20 * input.size_mb),
        runtime=lambda wc, input, attempt: attempt * int(5 + input.size_mb / 10),
    params:
        filters=cluster_filters,
        radius=config["catalogs"]["match_radius"],
    script:
        "../scripts/match_colour.py"


rule merge:
    input:
        catalogs=cluster_catalogs,
        registration=paths.REGISTRATION,
    output:
        paths.MERGED_CATALOG,
    log:
        "logs/merge/{cluster}.log",
    benchmark:
        "benchmarks/merge/{cluster}.tsv"
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * int(500 + 20 * input.size_mb),
        runtime=lambda wc, input, attempt: attempt * int(5 + input.size_mb / 10),
    params:
        filters=cluster_filters,
        radius=config["catalogs"]["match_radius"],
        min_filters=config["catalogs"]["min_filters"],
    script:
        "../scripts/merge.py"
