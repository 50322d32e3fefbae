// The agent console's screen pop: what the agent is shown of a contact
// ({contact, customer_id, account, balance_cents, currency, step, fields,
// context_trail}, from the offer frame or GET /api/v1/agent/contacts/{id}).
// Every value is rendered with textContent.

function money(cents, currency) {
  if (cents === null || cents === undefined) return "Not given";
  try {
    const format = new Intl.NumberFormat(undefined, { style: "currency", currency });
    const digits = format.resolvedOptions().maximumFractionDigits;
    return format.format(cents / 10 ** digits);
  } catch {
    return `${(cents / 100).toFixed(2)} ${currency}`;
  }
}

function when(text) {
  const at = new Date(text);
  return Number.isNaN(at.getTime()) ? String(text) : at.toLocaleString();
}

export function shown(value) {
  if (value === null || value === undefined || value === "") return "—";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function definitions(pairs) {
  const list = document.createElement("dl");
  for (const [term, value] of pairs) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    list.append(dt, dd);
  }
  return list;
}

function heading(text) {
  const h = document.createElement("h3");
  h.textContent = text;
  return h;
}

// Renders a screen pop into `container`.
export function renderPop(container, pop) {
  const parts = [
    definitions([
      ["Customer", shown(pop.customer_id)],
      ["Account", shown(pop.account)],
      ["Balance", money(pop.balance_cents, pop.currency)],
      ["Where they were", shown(pop.step)],
      ["Contact", shown(pop.contact)],
    ]),
  ];
  parts.push(heading("What they did before asking"));
  const trail = Array.isArray(pop.context_trail) ? pop.context_trail : [];
  if (trail.length === 0) {
    const none = document.createElement("p");
    none.textContent = "Nothing recorded.";
    parts.push(none);
  } else {
    const list = document.createElement("ol");
    list.className = "trail";
    for (const item of trail) {
      const entry = document.createElement("li");
      const at = document.createElement("span");
      at.className = "at";
      at.textContent = item && item.at ? when(item.at) : "";
      const what = document.createElement("span");
      const detail = item && item.detail ? `: ${shown(item.detail)}` : "";
      what.textContent = `${shown(item && item.step)}${detail}`;
      entry.append(at, " ", what);
      list.append(entry);
    }
    parts.push(list);
  }
  const fields = pop.fields && typeof pop.fields === "object" ? Object.entries(pop.fields) : [];
  if (fields.length > 0) {
    parts.push(heading("Other details"));
    parts.push(definitions(fields.map(([name, value]) => [name, shown(value)])));
  }
  container.replaceChildren(...parts);
}
