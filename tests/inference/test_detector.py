"""StudentDetector: the in-graph test resize follows detectron2's rule (also in an exported graph),
the traceable dense decoding equals detectron2's, and the detector returns the model's own output."""
import detectron2.data.transforms as T
import numpy as np
import onnxruntime as ort
import pytest
import torch
from detectron2.config import instantiate
from detectron2.modeling.meta_arch.dense_detector import DenseDetector
from detectron2.structures import Boxes

from dicod_d2.config.lazy import load_config
from dicod_d2.export import export_onnx
from dicod_d2.inference.detector import InGraphResize, StudentDetector, resize_from_augmentations

SIZES = [(256, 256), (480, 640), (640, 480), (333, 1500), (2000, 90), (799, 801)]


def test_resize_from_augmentations():
    assert resize_from_augmentations([]) == InGraphResize()
    assert resize_from_augmentations([T.Resize((300, 300))]) == InGraphResize(fixed=(300, 300))
    assert resize_from_augmentations([T.ResizeShortestEdge(800, 1333)]) == InGraphResize(short_edge=800,
                                                                                          max_size=1333)
    with pytest.raises(ValueError, match="RandomFlip"):
        resize_from_augmentations([T.RandomFlip()])
    with pytest.raises(ValueError, match="one length"):
        resize_from_augmentations([T.ResizeShortestEdge((640, 800), 1333, sample_style="choice")])


@pytest.mark.parametrize("h, w", SIZES)
def test_shortest_edge_size_is_detectron2s(h, w):
    expected = T.ResizeShortestEdge.get_output_shape(h, w, 800, 1333)
    assert InGraphResize(short_edge=800, max_size=1333).output_size(h, w) == expected


class _Resize(torch.nn.Module):
    def __init__(self, resize):
        super().__init__()
        self.resize = resize

    def forward(self, image):
        return self.resize(image.float())


def test_exported_shortest_edge_resize_follows_the_input_size(tmp_path):
    resize = InGraphResize(short_edge=80, max_size=133)
    path = export_onnx(_Resize(resize), tmp_path / "r.onnx", torch.zeros(3, 50, 70, dtype=torch.uint8),
                       output_names=("resized",))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for h, w in [(50, 70), (90, 40), (30, 200)]:
        image = np.random.default_rng(h).integers(0, 256, (3, h, w), dtype=np.uint8)
        (out,) = session.run(None, {"image": image})
        assert out.shape[1:] == T.ResizeShortestEdge.get_output_shape(h, w, 80, 133)
        np.testing.assert_allclose(out, resize(torch.from_numpy(image).float()).numpy(), atol=1e-2)


def _model(config):
    cfg = load_config(config)
    torch.manual_seed(0)
    return instantiate(cfg.model).eval()


def test_traceable_dense_decoding_equals_detectron2s():
    model = _model("configs/fashiondet/retinanet/baseline.py")
    original = DenseDetector._decode_per_level_predictions.__get__(model)
    StudentDetector(model, InGraphResize(), "BGR")  # installs the traceable decoding
    anchors = Boxes(torch.rand(500, 4) * 100 + torch.tensor([0, 0, 100, 100]))
    deltas = torch.randn(500, 4) * 0.1
    for thresh, topk in [(0.5, 1000), (0.5, 50), (0.999, 1000)]:  # top-k above, below, nothing kept
        scores = torch.rand(500, 10)
        a = original(anchors, scores, deltas, thresh, topk, (256, 256))
        b = model._decode_per_level_predictions(anchors, scores, deltas, thresh, topk, (256, 256))
        assert torch.equal(a.scores, b.scores) and torch.equal(a.pred_classes, b.pred_classes)
        assert torch.equal(a.pred_boxes.tensor, b.pred_boxes.tensor)


def test_detector_returns_the_models_own_detections():
    model = _model("configs/fashiondet/faster_rcnn/baseline.py")
    image = torch.randint(0, 256, (3, 200, 232), dtype=torch.uint8)
    with torch.no_grad():
        (expected,) = model([{"image": image.float(), "height": 200, "width": 232}])
    boxes, scores, classes = StudentDetector(model, InGraphResize(), "BGR")(image)
    assert len(scores) > 0
    assert torch.equal(boxes, expected["instances"].pred_boxes.tensor)
    assert torch.equal(scores, expected["instances"].scores)
    assert torch.equal(classes, expected["instances"].pred_classes)
    assert not model.training
