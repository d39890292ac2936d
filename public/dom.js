// Small element builders shared by the page's views; text is only ever set as textContent.

export function part(tag, className) {
  const e = document.createElement(tag);
  e.className = className;
  return e;
}

export function button(text, onClick, { testid, className } = {}) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  if (testid) b.dataset.testid = testid;
  if (className) b.className = className;
  b.addEventListener('click', onClick);
  return b;
}
