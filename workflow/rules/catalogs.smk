# Per cluster: register the frames onto a reference frame, match one-to-one, merge, draw CMDs.


rule register:
    input:
        unpack(cluster_catalogs),
    output:
        "results/matched/{cluster}/registration.yaml",
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
        max_shift=config["catalogs"]["max_shift"],
        tolerance=config["catalogs"]["match_radius"],
        model=config["catalogs"]["transform"],
    script:
        "../scripts/register.py"


rule match_colour:
    input:
        unpack(cluster_catalogs),
        registration="results/matched/{cluster}/registration.yaml",
    output:
        "results/matched/{cluster}/{blue}-{red}.ecsv",
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
        radius=config["catalogs"]["match_radius"],
    script:
        "../scripts/match_colour.py"


rule merge:
    input:
        unpack(cluster_catalogs),
        registration="results/matched/{cluster}/registration.yaml",
    output:
        "results/catalogs/{cluster}/merged.ecsv",
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
        radius=config["catalogs"]["match_radius"],
        min_filters=config["catalogs"]["min_filters"],
    script:
        "../scripts/merge.py"


# A seconds-long plot: run where the workflow runs, not as a cluster job.
localrules:
    cmd,


rule cmd:
    input:
        "results/matched/{cluster}/{blue}-{red}.ecsv",
    output:
        report(
            "results/plots/{cluster}/cmd_{blue}-{red}.png",
            caption="../report/cmd.rst",
            category="Colour-magnitude diagrams",
            subcategory="{cluster}",
            labels={"cluster": "{cluster}", "colour": "{blue}-{red}", "figure": "CMD"},
        ),
    log:
        "logs/cmd/{cluster}/{blue}-{red}.log",
    conda:
        "../envs/clusterphot.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: attempt * int(500 + 5 * input.size_mb),
        runtime=lambda wc, input, attempt: attempt * int(2 + input.size_mb / 50),
    params:
        band=lambda wc: cmd_band(config, wc.blue, wc.red),
        quality=config["catalogs"]["quality"],
    script:
        "../scripts/cmd.py"
