// The controller's REST API, with its refusals turned into messages that the
// console can show next to the field they are about.

export const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, body) {
    super(ApiError.summary(status, body));
    this.status = status;
    this.body = body;
    this.fields = ApiError.fields(body);
  }

  // One line for a banner: the API's own words.
  static summary(status, body) {
    const detail = body && body.detail;
    if (Array.isArray(detail)) return detail.map((p) => `${(p.loc || []).join(".")}: ${p.msg}`).join("; ");
    if (typeof detail === "string") return detail;
    return `HTTP ${status}`;
  }

  // Field path (without the leading "body") -> message, for inline errors.
  static fields(body) {
    const out = {};
    const detail = body && body.detail;
    const add = (loc, msg) => {
      const path = (loc || []).filter((p, i) => !(i === 0 && p === "body")).join(".");
      out[path] = out[path] ? `${out[path]}; ${msg}` : msg;
    };
    if (Array.isArray(detail)) detail.forEach((p) => add(p.loc, p.msg));
    else if (body && body.loc) add(body.loc, detail);
    return out;
  }
}

export function makeApi(token) {
  async function call(method, path, body) {
    const res = await fetch(API + path, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { "Content-Type": "application/json" } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }
  return {
    token,
    get: (path) => call("GET", path),
    post: (path, body = {}) => call("POST", path, body),
    put: (path, body) => call("PUT", path, body),
    patch: (path, body) => call("PATCH", path, body),
    del: (path) => call("DELETE", path),
    // every item of a paginated kind
    async all(kind) {
      const items = [];
      for (let offset = 0; ; offset += 1000) {
        const page = await call("GET", `/${kind}?limit=1000&offset=${offset}`);
        items.push(...page.items);
        if (items.length >= page.total || page.items.length === 0) return items;
      }
    },
    eventsUrl: (afterId) => `${API}/events?access_token=${encodeURIComponent(token)}${afterId ? `&after_id=${afterId}` : ""}`,
  };
}
