// The map of the model (explorer/model_map.py draws it; this runs as its gr.HTML's js_on_load, with
// `element` the component and `trigger` its events). It does two things in the page alone:
// - lights up the parts the open tab shows ("you are here"): the open tab is the selected tab button's
//   data-tab-id; on Attention and Inside a block, only the block on the tab's Layer slider;
// - sends a click on a part to the server as the map's click event, {tab, layer}, which opens that tab.
// A tab switch is seen at once (an observer on the tab buttons); a Layer slider's value, which changes
// no attribute, is looked at a few times a second.
const selectedTab = () => document.querySelector('#tabs [role=tab][aria-selected=true]')?.dataset.tabId || '';
let shownMap = null, shownKey = '', watching = null;
const mark = () => {
  const tabs = document.querySelector('#tabs');
  if (tabs && tabs !== watching) {
    new MutationObserver(mark).observe(tabs, {subtree: true, attributes: true, attributeFilter: ['aria-selected']});
    watching = tabs;
  }
  const map = element.querySelector('.model-map');
  if (!map) return;
  const tab = selectedTab();
  const slider = JSON.parse(map.dataset.layered || '{}')[tab];
  const value = slider ? document.querySelector(`#${slider} input[type=number]`)?.value : undefined;
  const layer = value === undefined || value === '' ? null : Number(value);
  const key = `${tab}|${layer}`;
  if (map === shownMap && key === shownKey) return;  // nothing changed since the last look
  shownMap = map; shownKey = key;
  for (const part of map.querySelectorAll('[data-here]')) {
    const shows = part.dataset.here.split(' ').includes(tab);
    const inLayer = layer === null || part.dataset.layer === undefined || Number(part.dataset.layer) === layer;
    part.classList.toggle('here', shows && inLayer);
  }
  const caption = JSON.parse(map.dataset.captions || '{}')[tab];
  map.querySelector('.mm-caption').textContent =
    caption ? `You are here: ${caption.replace('{layer}', layer ?? '')}` : 'Click a part to open its tab.';
  map.dataset.shows = tab;  // what is lit, for the page's tests
  map.dataset.showsLayer = layer ?? '';
};
setInterval(mark, 200);
element.addEventListener('click', (event) => {
  const part = event.target.closest('[data-tab]');
  if (!part || !element.contains(part)) return;
  trigger('click', {tab: part.dataset.tab, layer: part.dataset.layer === undefined ? null : Number(part.dataset.layer)});
});
