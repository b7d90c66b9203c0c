"""Networks used by several stages (decoders, residual blocks; UNets, transformers and the VQ tokenizer
of the generative methods). A network here knows nothing of the pipeline state; stages wrap it."""
