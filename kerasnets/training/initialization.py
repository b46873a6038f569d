"""Initialisation for training from scratch: residual blocks start as identities.

Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour"
(2017, section 5.1; timm's ``zero_init_last``): the BatchNormalization that
ends each residual branch starts with gamma 0, so every block first passes
its shortcut through unchanged and the network starts as a shallow one that
takes a higher learning rate without diverging (scikit-learn's digits,
``tools/bench_real_data.py``: MobileNetV2 (alpha 0.35) at a peak of 0.05,
batch 32, fell to 54 % held-out without it, 91 % with it).

Found in the functional graph, so it covers every family: for each ``Add``
of two or more inputs, the input furthest from the model's input (the
branch; the shortcut is the block's input or a shallower projection) is
followed back through a squeeze-and-excitation layer to its
BatchNormalization. Branches that end otherwise (DPN's dual paths,
pre-activation blocks, SE-ResNet-18/34's BN-ReLU-SE, where a zero gamma
would get no gradient through the ReLU) are left as they are. Pretrained
weights never pass through here.
"""


def _producer(tensor):
    return tensor._keras_history[0]  # noqa: SLF001  (operation, node, index)


def _depth_from_inputs(model):
    """``{id(tensor): longest path from a model input, in layers}``."""
    depth = {}
    nodes_by_depth = model._nodes_by_depth  # noqa: SLF001  (0: the outputs)
    for level in sorted(nodes_by_depth, reverse=True):  # parents before children
        for node in nodes_by_depth[level]:
            value = 1 + max((depth.get(id(t), 0) for t in node.input_tensors), default=0)
            for tensor in node.output_tensors:
                depth[id(tensor)] = value
    return depth


def residual_branch_norms(model):
    """The BatchNormalization layers that end ``model``'s residual branches."""
    import keras

    from kerasnets.layers import SEBlock

    depth = _depth_from_inputs(model)
    norms = []
    for layer in model.layers:
        if getattr(layer, "_nodes_by_depth", None) is not None:  # a nested functional model
            norms += [norm for norm in residual_branch_norms(layer) if norm not in norms]
            continue
        if not isinstance(layer, keras.layers.Add):
            continue
        for node in layer._inbound_nodes:  # noqa: SLF001
            depths = [depth.get(id(t)) for t in node.input_tensors]
            if len(depths) < 2 or None in depths or depths.count(max(depths)) > 1:
                continue  # not in this graph (a nested model's), or no deeper branch
            tensor = node.input_tensors[depths.index(max(depths))]
            source = _producer(tensor)
            # through the SE block (not through a ReLU: SE-ResNet-18/34's
            # branch ends BN-ReLU-SE, and a zero gamma there would never
            # learn, ReLU's gradient at 0 being 0)
            if isinstance(source, SEBlock):
                operation, node_index, _ = tensor._keras_history  # noqa: SLF001
                tensor = operation._inbound_nodes[node_index].input_tensors[0]  # noqa: SLF001
                source = _producer(tensor)
            if (isinstance(source, keras.layers.BatchNormalization) and source.scale
                    and source not in norms):
                norms.append(source)
    return norms


def zero_init_residual_branches(model):
    """Sets gamma to 0 in the BatchNormalization ending each residual branch
    of ``model`` (``residual_branch_norms``). Returns how many."""
    import numpy as np

    norms = residual_branch_norms(model)
    for norm in norms:
        norm.gamma.assign(np.zeros(norm.gamma.shape, norm.gamma.dtype))
    return len(norms)
