"""Files from strangers, written safely: checkpoints (:mod:`.checkpoint`), the ``.npy`` reader that
bounds a hostile file (:mod:`.safe_npz`), and atomic writes and run folders (:mod:`.atomic`)."""
