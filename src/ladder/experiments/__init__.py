"""The experiments behind `ladder experiments`, one module each, on real logs
(theory.md §6–§8): base (the shape of one), data (the folder and the shared evaluation),
runner (the joblib pool), page (docs/results.md and its claims table)."""
