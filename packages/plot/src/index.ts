// @octet/plot — loss curves and other training plots as standalone SVG documents, with no dependencies.

export { lineChartSvg, type LineChartOptions, type Series, type ReferenceLine } from "./line-chart.js";
export { ticks, smooth, type Point } from "./scale.js";
export { escapeXml } from "./xml.js";
