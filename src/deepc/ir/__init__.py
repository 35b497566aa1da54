"""IR levels: the graph IR (graph.py), tensor expressions and the loop IR."""
