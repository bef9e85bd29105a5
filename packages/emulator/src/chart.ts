/**
 * The live chart, drawn by hand on a canvas: registrations finished per second (assigned and
 * failed, stacked bars) above, latency p50 / p95 (lines) below, over the last `window` seconds.
 */
import type { SecondPoint } from './stats.js'

const COLORS = {
  assigned: '#2f9e44',
  failed: '#e03131',
  p50: '#1971c2',
  p95: '#f08c00',
  grid: '#e9ecef',
  axis: '#868e96',
  text: '#495057',
}

export interface ChartData {
  readonly points: readonly SecondPoint[]
  /** Seconds shown (the x axis always spans this many). */
  readonly window: number
}

export function drawChart(canvas: HTMLCanvasElement, data: ChartData): void {
  const ratio = globalThis.devicePixelRatio || 1
  const cssWidth = canvas.clientWidth || 600
  const cssHeight = canvas.clientHeight || 260
  if (canvas.width !== Math.round(cssWidth * ratio) || canvas.height !== Math.round(cssHeight * ratio)) {
    canvas.width = Math.round(cssWidth * ratio)
    canvas.height = Math.round(cssHeight * ratio)
  }
  const ctx = canvas.getContext('2d')
  if (ctx === null) return
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0)
  ctx.clearRect(0, 0, cssWidth, cssHeight)
  ctx.font = '11px system-ui, sans-serif'

  const left = 48
  const right = 12
  const gap = 26
  const top = 18
  const bottom = 20
  const panelHeight = (cssHeight - top - bottom - gap) / 2
  const width = cssWidth - left - right
  const points = data.points.slice(-data.window)
  // The x axis spans `window` seconds from the first point shown (a short run fills from the left).
  const first = points.length > 0 ? points[0]!.second : 0
  const last = first + data.window - 1
  const x = (second: number): number => left + ((second - first) / data.window) * width
  const barWidth = Math.max(1, width / data.window - 1)

  // Panel 1: registrations per second.
  const rateMax = niceMax(Math.max(4, ...points.map((p) => p.assigned + p.failed)))
  panel(ctx, left, top, width, panelHeight, rateMax, 'registrations / s')
  for (const p of points) {
    const h1 = (p.assigned / rateMax) * panelHeight
    const h2 = (p.failed / rateMax) * panelHeight
    ctx.fillStyle = COLORS.assigned
    ctx.fillRect(x(p.second), top + panelHeight - h1, barWidth, h1)
    ctx.fillStyle = COLORS.failed
    ctx.fillRect(x(p.second), top + panelHeight - h1 - h2, barWidth, h2)
  }

  // Panel 2: latency percentiles.
  const top2 = top + panelHeight + gap
  const latMax = niceMax(Math.max(20, ...points.map((p) => p.p95 ?? 0)))
  panel(ctx, left, top2, width, panelHeight, latMax, 'latency ms (p50, p95)')
  for (const [key, color] of [
    ['p95', COLORS.p95],
    ['p50', COLORS.p50],
  ] as const) {
    ctx.strokeStyle = color
    ctx.lineWidth = 1.5
    ctx.beginPath()
    let drawing = false
    for (const p of points) {
      const v = p[key]
      if (v === undefined) {
        drawing = false
        continue
      }
      const px = x(p.second) + barWidth / 2
      const py = top2 + panelHeight - (Math.min(v, latMax) / latMax) * panelHeight
      if (drawing) ctx.lineTo(px, py)
      else ctx.moveTo(px, py)
      drawing = true
    }
    ctx.stroke()
    // A dot per second, so a lone second still shows.
    ctx.fillStyle = color
    for (const p of points) {
      const v = p[key]
      if (v === undefined) continue
      ctx.beginPath()
      ctx.arc(x(p.second) + barWidth / 2, top2 + panelHeight - (Math.min(v, latMax) / latMax) * panelHeight, 2, 0, 2 * Math.PI)
      ctx.fill()
    }
  }

  // Time axis (seconds since start).
  ctx.fillStyle = COLORS.text
  ctx.textAlign = 'center'
  const step = data.window <= 60 ? 10 : 30
  for (let s = Math.ceil(first / step) * step; s <= last; s += step) {
    ctx.fillText(`${s}s`, x(s), cssHeight - 6)
  }

  // Legend.
  legend(ctx, cssWidth - right, 12, [
    ['assigned', COLORS.assigned],
    ['failed', COLORS.failed],
    ['p50', COLORS.p50],
    ['p95', COLORS.p95],
  ])
}

function panel(ctx: CanvasRenderingContext2D, left: number, top: number, width: number, height: number, max: number, title: string): void {
  ctx.strokeStyle = COLORS.grid
  ctx.lineWidth = 1
  ctx.fillStyle = COLORS.text
  ctx.textAlign = 'right'
  for (let i = 0; i <= 4; i++) {
    const y = Math.round(top + height - (i / 4) * height) + 0.5
    ctx.beginPath()
    ctx.moveTo(left, y)
    ctx.lineTo(left + width, y)
    ctx.stroke()
    ctx.fillText(formatTick((max * i) / 4), left - 6, y + 4)
  }
  ctx.strokeStyle = COLORS.axis
  ctx.beginPath()
  ctx.moveTo(left + 0.5, top)
  ctx.lineTo(left + 0.5, top + height)
  ctx.stroke()
  ctx.textAlign = 'left'
  ctx.fillText(title, left + 4, top - 5)
}

function legend(ctx: CanvasRenderingContext2D, rightEdge: number, y: number, items: readonly (readonly [string, string])[]): void {
  ctx.textAlign = 'left'
  let x = rightEdge
  for (const [label] of items) x -= ctx.measureText(label).width + 24
  for (const [label, color] of items) {
    ctx.fillStyle = color
    ctx.fillRect(x, y - 8, 10, 10)
    ctx.fillStyle = COLORS.text
    ctx.fillText(label, x + 14, y + 1)
    x += ctx.measureText(label).width + 24
  }
}

/** A round upper bound for an axis whose quarters are round too (1, 2, 4, 8 × 10^n). */
export function niceMax(value: number): number {
  const exp = Math.pow(10, Math.floor(Math.log10(value)))
  for (const m of [1, 2, 4, 8, 10]) if (m * exp >= value) return m * exp
  return 10 * exp
}

function formatTick(v: number): string {
  if (v >= 10_000) return `${Math.round(v / 1000)}k`
  if (v >= 1000) return `${(v / 1000).toFixed(1)}k`
  return Number.isInteger(v) ? String(v) : v.toFixed(1)
}
