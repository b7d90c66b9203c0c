"""Training: the loop behind ``nvsbench train`` (:mod:`.loop`), the losses of each method
(:mod:`.losses`), and checkpoint files (:mod:`.checkpoint`, also read by evaluation)."""
