// Layout editor DOM helpers: element and button factories and the editor's style sheet (added once, on first use).

export function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
        if (k === "style") Object.assign(e.style, v);
        else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
        else if (k in e && k !== "list") e[k] = v;
        else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
}

/** A button with `data-act` = name (the browser test finds them by it). */
export function button(name, label, title, fn, disabled = false) {
    const b = el("button", { textContent: label, title, onclick: fn, disabled });
    b.dataset.act = name;
    return b;
}

const CSS = `
.instdiff-frame{box-sizing:border-box;display:flex;flex-direction:column}
.instdiff-frame .ide-away[hidden]{display:none}
.instdiff-frame .ide-away{flex:1 1 auto;display:flex;align-items:center;justify-content:center;color:#999;
 font:12px sans-serif;background:#1e1e1e;border:1px dashed #555;border-radius:4px}
.instdiff-editor{display:flex;flex-direction:column;gap:3px;box-sizing:border-box;font:11px sans-serif;color:#ddd;
 background:#1e1e1e;border:1px solid #444;border-radius:4px;padding:3px;overflow:hidden;flex:1 1 auto;min-height:0}
.instdiff-editor button{font:11px sans-serif;background:#333;color:#ddd;border:1px solid #555;border-radius:3px;padding:1px 5px;cursor:pointer}
.instdiff-editor button:hover{background:#444}
.instdiff-editor button.on{background:#2d5d8a;border-color:#6aa0d0;color:#fff}
.instdiff-editor button:disabled{opacity:.4;cursor:default}
.instdiff-editor .ide-bar{display:flex;flex-wrap:wrap;gap:2px;align-items:center}
.instdiff-editor .ide-sep{width:6px}
.instdiff-editor .ide-stage{flex:1 1 auto;min-height:60px;position:relative;display:flex;align-items:center;justify-content:center;overflow:hidden}
.instdiff-editor canvas{touch-action:none;cursor:crosshair;outline:none;background:#303030}
.instdiff-editor .ide-list{flex:0 0 auto;max-height:112px;overflow-y:auto;border-top:1px solid #444}
.instdiff-editor .ide-row{display:flex;gap:2px;align-items:center;padding:1px}
.instdiff-editor .ide-row.sel{background:#2d4a66}
.instdiff-editor .ide-row input[type=text]{flex:1 1 auto;min-width:40px;background:#111;color:#eee;border:1px solid #555;font:11px sans-serif;padding:1px 3px}
.instdiff-editor .ide-row input[type=color]{width:20px;height:18px;padding:0;border:none;background:none}
.instdiff-editor .ide-row input.ide-weight{width:40px;flex:0 0 auto;background:#111;color:#eee;border:1px solid #555;font:11px sans-serif;padding:1px 2px}
.instdiff-editor .ide-kinds{font-family:monospace;color:#aaa;min-width:38px}
.instdiff-editor .ide-status{min-height:13px;color:#e8b04a;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.instdiff-editor input[type=range]{width:60px}
.instdiff-editor .ide-keys{position:absolute;left:0;top:0;width:1px;height:1px;opacity:0;border:0;padding:0;pointer-events:none}
.instdiff-editor select{font:11px sans-serif;background:#333;color:#ddd;border:1px solid #555;border-radius:3px}
.instdiff-popout{position:fixed;inset:0;z-index:100000;background:rgba(0,0,0,.6);display:flex;align-items:center;justify-content:center}
.instdiff-popout .ide-panel{box-sizing:border-box;width:calc(100vw - 32px);height:calc(100vh - 32px);display:flex;flex-direction:column;
 background:#1e1e1e;border:1px solid #666;border-radius:6px;padding:6px;gap:4px;box-shadow:0 8px 32px #000}
.instdiff-popout .ide-head{display:flex;align-items:center;gap:8px;font:13px sans-serif;color:#ddd}
.instdiff-popout .ide-head span{flex:1 1 auto}
.instdiff-popout .ide-head button{font:13px sans-serif;background:#2d5d8a;color:#fff;border:1px solid #6aa0d0;border-radius:3px;padding:2px 14px;cursor:pointer}
.instdiff-popout .instdiff-editor{font-size:12px}
.instdiff-popout .instdiff-editor .ide-list{max-height:25vh}
`;

export function injectCss() {
    if (document.getElementById("instdiff-editor-css")) return;
    document.head.append(el("style", { id: "instdiff-editor-css", textContent: CSS }));
}
