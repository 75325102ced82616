import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib import animation  # noqa: E402

from papernotes_core import plotting  # noqa: E402


def test_animation_html_is_self_contained():
    fig, ax = plt.subplots()
    line, = ax.plot([0, 1], [0, 0])
    anim = animation.FuncAnimation(fig, lambda i: line.set_ydata([0, i]), frames=3)
    raw = anim.to_jshtml()
    html = plotting.animation_html(anim)
    plt.close(fig)
    assert "https://" in raw and "stylesheet" in raw  # what matplotlib does by default
    assert "https://" not in html and "http://" not in html
    assert html.count("data:image/png;base64") == 3  # every frame embedded
    with pytest.raises(ValueError):
        plotting.animation_html(anim, default_mode="bounce")
    with pytest.raises(TypeError):
        plotting.animation_html("not an animation")
