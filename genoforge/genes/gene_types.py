"""GFF3 type names and the part they play in a gene model (keys lower case).

Which rows are genes, transcripts, parts (exon, CDS, stop_codon) or stand-alone features, which
are implied by exons + CDS (UTRs, introns: neither modelled nor counted), and the biotype each
RNA, gene or stand-alone type maps to (``inventory.TRANSCRIPT_BIOTYPES``,
``inventory.FEATURE_TYPES``). The rules that use them are in :mod:`genoforge.genes.annotation`.
"""

from __future__ import annotations

from genoforge.genes import inventory as inv
from genoforge.genes.gff3 import Feature

RNA_BIOTYPES = {t.lower(): t for t in inv.RNA_TYPES} | {"lncrna": "lncRNA", "lnc_rna": "lncRNA"}
TRANSCRIPT_TYPES = {"mrna", "transcript", "primary_transcript", "pseudogenic_transcript"}
TRANSCRIPT_TYPES |= {"mrna_te_gene"}  # TAIR10's transcript of a transposable_element_gene
TRANSCRIPT_TYPES |= set(RNA_BIOTYPES)
# Gene types and the biotype they impose on their transcripts (None: decided by the transcript).
GENE_TYPES: dict[str, str | None] = {
    "gene": None,
    "protein_coding_gene": None,
    "ncrna_gene": None,
    "pseudogene": inv.PSEUDOGENE,
    "transposable_element_gene": inv.TRANSPOSABLE_ELEMENT,
}
EXON_TYPES = {"exon", "noncoding_exon", "pseudogenic_exon"}
PART_TYPES = EXON_TYPES | {"cds", "stop_codon"}
# Implied by exons + CDS: neither modelled nor counted as skipped.
IMPLIED_TYPES = {
    "five_prime_utr",
    "three_prime_utr",
    "utr",
    "five_prime_utr_intron",
    "intron",
    "start_codon",
    # GTF spellings (AUGUSTUS: 5'-UTR, tss, tts; older Ensembl: 5UTR)
    "5'-utr",
    "3'-utr",
    "5utr",
    "3utr",
    "tss",
    "tts",
}
STANDALONE_TYPES = {
    "ars": inv.ORIGIN_OF_REPLICATION,
    "origin_of_replication": inv.ORIGIN_OF_REPLICATION,
    "mobile_genetic_element": inv.MOBILE_GENETIC_ELEMENT,
    "insertion_sequence": inv.MOBILE_GENETIC_ELEMENT,
}
# Rows that a gene model hangs from (parts hang from these through Parent).
NON_PART_TYPES = set(GENE_TYPES) | TRANSCRIPT_TYPES | set(STANDALONE_TYPES)
BIOTYPE_ATTRIBUTES = ("biotype", "transcript_biotype", "gene_biotype")


def biotype_attribute(row: Feature) -> str | None:
    for key in BIOTYPE_ATTRIBUTES:
        for value in row.attributes.get(key, ()):
            if value in inv.TRANSCRIPT_BIOTYPES:
                return value
            if value.lower() in RNA_BIOTYPES:
                return RNA_BIOTYPES[value.lower()]
    return None


__all__ = [
    "BIOTYPE_ATTRIBUTES",
    "EXON_TYPES",
    "GENE_TYPES",
    "IMPLIED_TYPES",
    "NON_PART_TYPES",
    "PART_TYPES",
    "RNA_BIOTYPES",
    "STANDALONE_TYPES",
    "TRANSCRIPT_TYPES",
    "biotype_attribute",
]
