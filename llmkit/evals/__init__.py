"""The evaluation layer over compare() and the call log.

``scoring`` runs checks on compare()'s rows as they arrive and records their results; ``stats``
gives pass rates (Wilson intervals) and the spread across samples; ``ratings`` fits a Bradley–Terry
rating per model from votes and pairwise verdicts; ``blind`` letters a comparison's answers;
``comparator`` writes LLM Comparator's JSON. The checks themselves are in :mod:`llmkit.checks`.
"""
