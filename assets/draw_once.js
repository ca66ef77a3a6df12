() => {
    // Gradio's plot component draws each new figure twice: into the plot it replaces, which leaves the
    // page a moment later, and into the new one. Drawing a figure is most of what a redraw costs in the
    // browser, so a figure is drawn only into a plot still on the page, and redrawn to fit only when its
    // box's width changed.
    //
    // An answer that brings several figures (a tab's four) would draw them all before the page is painted
    // once, so the learner would see none until the last is drawn. Figures are drawn one at a time, in
    // the order the answer lists them (a tab lists its main figure first), and the page is painted after
    // each. Plotly arrives with the first figure; until then there is nothing to change.
    //
    // `window.explorerDrawn()` resolves once the figures an answer brought are drawn: Analyze's follow-up
    // (ui.py) waits for it, so its work on the server (the logit lens, each token's surprise) never shares the CPU
    // with the drawing when browser and app run on one machine.
    let drawn = false;  // a figure was drawn since the page was last painted
    let queue = Promise.resolve();  // the draws and resizes, one after another
    const afterPaint = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
    window.explorerDrawn = () => afterPaint().then(() => queue);  // after the answer's figures are queued
    const patch = () => {
        const plotly = window.Plotly;
        if (!plotly || plotly.drawsOnce) return Boolean(plotly);
        const react = plotly.react, resize = plotly.Plots.resize;
        const inTurn = (work, paint) => {  // in order; a draw waits for a paint only after another draw
            const done = queue.then(() => (paint && drawn ? afterPaint() : null)).then(work);
            queue = done.catch(() => null);
            return done;
        };
        const draw = (div, figure) => {
            if (!div.isConnected) return div;
            if (!drawn) requestAnimationFrame(() => { drawn = false; });  // the frame that paints it
            drawn = true;
            return react.call(plotly, div, ...figure);
        };
        plotly.react = (div, ...figure) => inTurn(() => draw(div, figure), true);
        // Gradio resizes every figure it has just drawn, which redraws it whole: as long again as the draw.
        // A figure already as wide as its box (its height is fixed by the figure) is left as it is.
        const fits = (div) => Math.abs(div.clientWidth - div._fullLayout.width) < 1;
        plotly.Plots.resize = (div) =>  // after the react above has drawn it; no paint needed in between
            inTurn(() => (div.isConnected && div._fullLayout && !fits(div) ? resize.call(plotly.Plots, div) : div),
                   false);
        plotly.drawsOnce = true;
        return true;
    };
    if (!patch()) {
        const timer = setInterval(() => { if (patch()) clearInterval(timer); }, 20);
    }
}
