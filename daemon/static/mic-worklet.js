// AudioWorklet: hands each block of microphone samples (mono, the context's rate) to the page.
class MicCapture extends AudioWorkletProcessor {
  process(inputs) {
    const input = inputs[0];
    if (input && input[0] && input[0].length) this.port.postMessage(input[0].slice(0));
    return true;
  }
}
registerProcessor("personae-mic", MicCapture);
