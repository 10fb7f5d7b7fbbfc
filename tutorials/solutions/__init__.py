"""Reference answers to the exercises of the tutorial notebooks, one module per notebook.

``exNN.py`` answers the exercises of notebook ``NN_*.ipynb``. Try the exercise first; read
the answer when you are stuck or to compare. A notebook uses these answers instead of your
code when it runs with the environment variable ``MINITRANSFORMER_SOLUTIONS=1`` (the tests
do this to prove that every exercise cell passes its check).
"""
