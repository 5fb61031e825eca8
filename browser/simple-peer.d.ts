// simple-peer's prebuilt browser bundle (UMD, its Node built-ins already polyfilled inside) exports
// the same constructor as the package's main entry, which @types/simple-peer describes.
declare module 'simple-peer/simplepeer.min.js' {
  import SimplePeer = require('simple-peer');
  export = SimplePeer;
}
