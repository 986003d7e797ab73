"""Analysis of finished runs: run directories read back (:mod:`.runs`), the paper's tables with model
selection (:mod:`.tables`), every plot (:mod:`.plots`), ``limitlab report`` (:mod:`.report`) and
label-error detection (:mod:`.detect`)."""
