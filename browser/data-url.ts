// The default run's training text, shipped beside the pages (vite.config.ts): a swarm on other text
// names its own. Alone here so that the page can name it without importing the trainer.
export const DEFAULT_DATA_URL = 'tinyshakespeare.txt';
