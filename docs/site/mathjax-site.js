/* MathJax 3 for the lesson pages, served by the site itself (no CDN: it works offline).
   tools/site.py installs MathJax from npm and copies it to assets/mathjax/; mkdocs.yml makes
   mkdocs-jupyter load this file. The delimiters are those of Jupyter's markdown cells. */
window.MathJax = {
  tex: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
    tags: "ams"
  },
  svg: {fontCache: "global"}
};
(function () {
  var script = document.createElement("script");
  script.src = new URL("mathjax/tex-svg.js", document.currentScript.src).href;
  script.async = true;
  document.head.appendChild(script);
})();
