"""The lecture's heart, readable beside the video: the MLP's forward (:mod:`.model`), its manual
backward line by line (:mod:`.backward`), the fused kernels derived by sympy (:mod:`.generated`,
written by ``python -m derivations``) and their use (:mod:`.fused`), and one SGD step
(:mod:`.step`)."""
