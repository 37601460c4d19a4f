"""Quality labels without a human: a judge grades a rung's answer, by agreement with a
reference rung's answer (short and numeric answers) or by asking a judge model with a fixed
rubric (free text, or no reference at all).

One module per idea: `agreement` (the label-free comparison of two answers), `rubric` (the
judge model's prompts and how its yes/no becomes a soft label), `grader` (the `Judge` that
combines them and counts its failures), `label` (filling a run log's missing labels,
resumable: `ladder label`). The correction of a target-quality promise for a judge's label
noise lives with the operating points (`ladder.policies.ppi`).
"""
