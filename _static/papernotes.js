/* Papernotes: display equations fit their column (issue 19, part 6).
 *
 * MathJax 3 does not break long display equations. The widest are written over aligned lines;
 * what is still wider than the column on a narrow window (a phone) is scaled down to fit, to
 * no less than FLOOR of its size, again whenever the window changes size. Each scaled
 * equation carries its factor in data-pn-scale, which tools/browser_check.py reads: at a
 * 1280-pixel window no equation may need scaling below 0.9, and at a phone's width none may
 * still be wider than its column.
 */
(function () {
  "use strict";
  var FLOOR = 0.6;

  function fitMath() {
    var boxes = document.querySelectorAll('mjx-container[display="true"]');
    for (var i = 0; i < boxes.length; i++) {
      var mjx = boxes[i];
      if (mjx.dataset.pnSize === undefined) mjx.dataset.pnSize = mjx.style.fontSize || "";
      var base = parseFloat(mjx.dataset.pnSize) || 100;      // MathJax's own size, in %
      mjx.style.fontSize = mjx.dataset.pnSize;
      delete mjx.dataset.pnScale;
      var math = mjx.querySelector("mjx-math");
      var host = mjx.parentElement;
      if (!math || !host) continue;
      var room = host.clientWidth, wide = math.getBoundingClientRect().width;
      if (room > 0 && wide > room) {
        var scale = Math.max(FLOOR, Math.floor((room / wide) * 1000) / 1000);
        mjx.style.fontSize = (base * scale).toFixed(1) + "%";
        mjx.dataset.pnScale = String(scale);
      }
    }
  }
  window.papernotesFitMath = fitMath;

  function whenTypeset() {
    var mj = window.MathJax;
    if (mj && mj.startup && mj.startup.promise) {
      mj.startup.promise.then(function () { fitMath(); observe(); });
    } else if (document.readyState !== "complete" || !whenTypeset.waited) {
      whenTypeset.waited = document.readyState === "complete";
      setTimeout(whenTypeset, 50);
    }
  }
  document.addEventListener("DOMContentLoaded", whenTypeset);
  // Refit an equation whenever its column changes width (a resized window, a sidebar opened
  // or closed): a ResizeObserver on each equation's parent reports after layout, when the new
  // width can be measured (a window's resize event may come before the layout settles).
  function observe() {
    if (!window.ResizeObserver) {
      window.addEventListener("resize", fitMath);
      return;
    }
    var widths = new Map();
    var observer = new ResizeObserver(function (entries) {
      var changed = false;
      entries.forEach(function (entry) {
        var width = Math.round(entry.contentRect.width);
        if (widths.get(entry.target) !== width) { widths.set(entry.target, width); changed = true; }
      });
      if (changed) fitMath();
    });
    var boxes = document.querySelectorAll('mjx-container[display="true"]');
    for (var i = 0; i < boxes.length; i++) {
      if (boxes[i].parentElement) observer.observe(boxes[i].parentElement);
    }
  }
})();
