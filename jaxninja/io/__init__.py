"""Files from strangers, written safely: checkpoints (:mod:`.checkpoint`), the ``.npy`` reader that
bounds a hostile file (:mod:`.safe_npz`), atomic writes and run folders (:mod:`.atomic`), and
opening only regular files, never blocking (:mod:`.files`)."""
