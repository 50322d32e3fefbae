// Agent-assisted secure payment in the agent console: "Take secure payment"
// puts the connected customer into secure capture (take_payment {contact,
// amount_cents} on /ws/agent, assistline/signalling/agent_media.py). The
// customer keys the card on their own keypad; the agent stays on the line
// and hears none of it. The console only ever receives masked progress
// (payment {contact, progress}: "•••• •••• •••• 4242, Luhn ✓, expiry ✓")
// and the result (payment {contact, result: {outcome, amount_cents, brand?,
// last4?, confirmation?}}). Nothing here logs, and every value is rendered
// with textContent; progress is masked again here, as a second line of defence.

const $ = (id) => document.getElementById(id);

// The most one payment may take, in cents (assistline.ivr.assisted.MAX_AMOUNT).
const MAX_CENTS = 100_000_000;
// Dollars (optionally grouped by commas) and at most two digits of cents.
const AMOUNT = /^\$?\s*(\d+|\d{1,3}(?:,\d{3})+)?(?:\.(\d{0,2}))?$/;
const BRANDS = {
  visa: "Visa",
  mastercard: "Mastercard",
  amex: "American Express",
  discover: "Discover",
};
const IDLE_HINT = "Opens while you are connected to the customer.";
const READY_HINT =
  "Dollars and cents, for example 42.10. The customer keys the card on their keypad; " +
  "you stay on the line but hear none of their keys and see only masked progress.";

// "$1,234.56" from integer cents, without floating-point arithmetic.
export function dollars(cents) {
  const whole = Math.trunc(cents / 100);
  const part = String(cents % 100).padStart(2, "0");
  return `$${whole.toLocaleString("en-US")}.${part}`;
}

// What an agent typed, as integer cents: {cents} or {error} (a sentence to show).
export function parseAmount(text) {
  const match = AMOUNT.exec(text.trim());
  if (text.trim() === "" || match === null || (match[1] === undefined && !match[2])) {
    return { error: "Enter the amount in dollars and cents, for example 42.10." };
  }
  const whole = (match[1] || "0").replace(/,/g, "").replace(/^0+(?=\d)/, "");
  const cents = (match[2] || "").padEnd(2, "0");
  // At most 7 digits of dollars: every value stays an exact integer.
  if (whole.length > 7) return { error: `The amount can be at most ${dollars(MAX_CENTS)}.` };
  const total = Number(whole) * 100 + Number(cents);
  if (total <= 0) return { error: "The amount must be more than $0.00." };
  if (total > MAX_CENTS) return { error: `The amount can be at most ${dollars(MAX_CENTS)}.` };
  return { cents: total };
}

// The amount input's text for a balance in cents ("123.45"); "" for none.
function amountText(cents) {
  if (!Number.isSafeInteger(cents) || cents <= 0 || cents > MAX_CENTS) return "";
  return `${Math.trunc(cents / 100)}.${String(cents % 100).padStart(2, "0")}`;
}

// Hides any run of five or more digits (spaces or dashes between them allowed):
// the server's progress never has one, so this only ever hides a server bug.
function masked(text) {
  return String(text).replace(/\d(?:[\s-]?\d){4,}/g, "•••");
}

// The result in plain words.
function resultText(result) {
  const cents = result.amount_cents;
  const amount = Number.isSafeInteger(cents) ? dollars(cents) : "the amount";
  const last4 = String(result.last4 ?? "");
  const card = /^\d{4}$/.test(last4) ? `${BRANDS[result.brand] || "card"} ending ${last4}` : "";
  switch (result.outcome) {
    case "approved": {
      const paid = card ? ` with ${card}` : "";
      const code = String(result.confirmation ?? "");
      const confirmed = /^[A-Za-z0-9_-]{1,64}$/.test(code) ? ` Confirmation number ${code}.` : "";
      return `Payment approved: ${amount} paid${paid}.${confirmed}`;
    }
    case "declined":
      return (
        `Payment declined: ${amount} was not taken${card ? ` from ${card}` : ""}. ` +
        "You can offer to take another card."
      );
    case "failed":
      return (
        "Payment failed: the payment service failed or did not answer, so it is not confirmed. " +
        "Check the account before taking it again."
      );
    case "abandoned":
      return (
        "Payment abandoned: the card details were not completed (not entered in time, " +
        "too many tries, or a hang-up). Nothing was charged."
      );
    default:
      return `The payment ended: ${String(result.outcome).slice(0, 40)}.`;
  }
}

// The "Secure payment" part of the current call. send(frame) returns whether
// it was sent.
export class PaymentPanel {
  constructor(send) {
    this.send = send;
    this.contact = null; // the contact the agent is connected to
    this.paying = null; // the contact a payment was asked for or runs on
    this.pending = false; // take_payment sent, nothing heard back yet
    this.pops = new Map(); // contact → the amount its screen pop suggests
    $("payment-form").addEventListener("submit", (event) => this.take(event));
    $("payment-amount").addEventListener("input", () => this.error(""));
    this.show();
  }

  // The screen pop of an offered contact: its balance is the default amount
  // (only in US dollars, the currency payments are taken in).
  offered(pop) {
    const usd = !pop.currency || String(pop.currency).toUpperCase() === "USD";
    this.pops.clear();
    this.pops.set(pop.contact, usd ? amountText(pop.balance_cents) : "");
  }

  // The agent is connected to `contact` (null: no longer connected to anyone).
  connected(contact) {
    if (contact === this.contact) return;
    this.contact = contact;
    if (contact !== null) {
      // A new call: nothing of the last one's payment is shown or awaited.
      this.paying = null;
      this.pending = false;
      $("payment-amount").value = this.pops.get(contact) || "";
      $("payment-progress").textContent = "";
      $("payment-result").textContent = "";
      this.error("");
    } else if (this.pending) {
      this.pending = false;
      this.paying = null;
      $("payment-progress").textContent = "";
    }
    this.show();
  }

  // Whether a payment was asked for or is running (the control is off meanwhile).
  get busy() {
    return this.paying !== null;
  }

  show() {
    const off = this.contact === null || this.busy;
    $("payment-amount").disabled = off;
    $("take-payment").disabled = off;
    $("payment-hint").textContent = this.contact === null ? IDLE_HINT : READY_HINT;
  }

  error(text) {
    $("payment-error").textContent = text;
    if (text) $("payment-amount").setAttribute("aria-invalid", "true");
    else $("payment-amount").removeAttribute("aria-invalid");
  }

  take(event) {
    event.preventDefault();
    if (this.contact === null || this.busy) return;
    const amount = parseAmount($("payment-amount").value);
    if (amount.error) {
      this.error(amount.error);
      $("payment-amount").focus();
      return;
    }
    this.error("");
    const frame = { type: "take_payment", contact: this.contact, amount_cents: amount.cents };
    if (!this.send(frame)) {
      this.error("Not connected to the server yet; try again in a moment.");
      return;
    }
    this.paying = this.contact;
    this.pending = true;
    $("payment-result").textContent = "";
    $("payment-progress").textContent = `Starting a secure payment of ${dollars(amount.cents)}…`;
    this.show();
    $("payment-progress").focus(); // the button is now disabled: focus goes to the progress
  }

  // A payment frame: masked progress, or the result.
  frame(message) {
    const contact = message.contact;
    if (contact !== this.paying && contact !== this.contact) return;
    this.pending = false;
    if (message.result && typeof message.result === "object") {
      this.paying = null;
      $("payment-result").textContent = resultText(message.result);
      this.show();
    } else if (typeof message.progress === "string") {
      this.paying = contact;
      $("payment-progress").textContent = masked(message.progress);
      this.show();
    }
  }

  // An error frame: true when it refuses the take_payment sent (shown here).
  refused(message) {
    if (!this.pending) return false;
    this.pending = false;
    this.paying = null;
    $("payment-progress").textContent = "";
    this.error(`The payment could not start: ${String(message.message).replace(/[.\s]+$/, "")}.`);
    this.show();
    if (this.contact !== null) $("payment-amount").focus();
    return true;
  }
}
