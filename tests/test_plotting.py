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


def _gif(frames=3):
    from PIL import Image
    import io
    images = [Image.new("RGB", (4, 4), (60 * i, 0, 0)) for i in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=50, loop=0)
    return buf.getvalue()


def test_gif_animation_plays_in_html_and_has_its_first_frame_as_still():
    import base64
    import io
    from PIL import Image
    gif = _gif()
    bundle = plotting.gif_animation(gif, alt='Pong "live"', width=320)._repr_mimebundle_()
    assert bundle["text/html"] == ('<img src="data:image/gif;base64,' + base64.b64encode(gif).decode()
                                   + '" width="320" alt="Pong &quot;live&quot;">')
    still = Image.open(io.BytesIO(base64.b64decode(bundle["image/png"])))
    assert still.format == "PNG" and still.size == (4, 4)
    assert still.convert("RGB").getpixel((0, 0)) == (0, 0, 0)          # the first frame's colour
    assert bundle["text/plain"] == '[animation: Pong "live"]'
    with pytest.raises(ValueError, match="GIF"):
        plotting.gif_animation(b"\x89PNG\r\n\x1a\n", alt="x")
    with pytest.raises(ValueError, match="width"):
        plotting.gif_animation(gif, alt="x", width=0)
    with pytest.raises(ValueError, match="alt"):
        plotting.gif_animation(gif, alt=" ")


def test_js_animation_still_is_the_last_frame():
    import base64
    import io
    from PIL import Image
    fig, ax = plt.subplots(figsize=(1, 1), dpi=20)
    im = ax.imshow([[0.0]], cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
    fig.subplots_adjust(0, 0, 1, 1)
    anim = animation.FuncAnimation(fig, lambda i: im.set_data([[i / 2]]), frames=3)
    out = plotting.js_animation(anim, alt="fading in")
    plt.close(fig)
    bundle = out._repr_mimebundle_()
    assert "https://" not in bundle["text/html"] and bundle["text/html"].count("data:image/png;base64") == 3
    still = Image.open(io.BytesIO(base64.b64decode(bundle["image/png"]))).convert("L")
    assert still.getpixel((10, 10)) == 255              # frame 2 of 0..2: value 1, white
    with pytest.raises(ValueError, match="PNG"):
        plotting.Animated("<p>x</p>", b"GIF89a", "x")
