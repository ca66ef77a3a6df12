() => {
    // Gradio's plot component draws each new figure twice: into the plot it replaces, which leaves the
    // page a moment later, and into the new one. Drawing a figure is most of what a redraw costs in the
    // browser, so a figure is drawn only into a plot still on the page. Plotly arrives with the first
    // figure; until then there is nothing to change.
    const patch = () => {
        const plotly = window.Plotly;
        if (!plotly || plotly.drawsOnce) return Boolean(plotly);
        const react = plotly.react, resize = plotly.Plots.resize;
        plotly.react = (div, ...figure) =>
            Promise.resolve().then(() => (div.isConnected ? react.call(plotly, div, ...figure) : div));
        plotly.Plots.resize = (div) =>  // after the deferred react above has drawn it
            Promise.resolve().then(() => null).then(() => (div.isConnected && div._fullLayout ? resize.call(plotly.Plots, div) : div));
        plotly.drawsOnce = true;
        return true;
    };
    if (!patch()) {
        const timer = setInterval(() => { if (patch()) clearInterval(timer); }, 20);
    }
}
