"""Reports over many runs: collect results.json files, group seeds, write tables and figures.

    python train/report.py --runs=runs --out=runs/report

`collect` and `tables` need only the standard library and NumPy; `plots`
needs matplotlib, and TensorFlow only for the weight histograms.
"""
