// rhea's self-contained browser build (browserify UMD: its own Buffer, events and process shims).
declare module 'rhea/dist/rhea-umd.js' {
  const rhea: unknown
  export default rhea
}
