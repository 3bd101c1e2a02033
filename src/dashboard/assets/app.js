// Keyward dashboard: dialogs, copy to clipboard, inline validation, small conveniences.
// Plain JavaScript, no build step. Every page works with the keyboard; the server re-checks
// everything this script checks.
(() => {
  'use strict';

  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

  // ------------------------------------------------------------------ dialogs

  function focusFirst(dialog) {
    const target =
      dialog.querySelector('[autofocus]:not([disabled])') ||
      dialog.querySelector('.has-error input, .has-error textarea, .has-error select') ||
      dialog.querySelector('input:not([type=hidden]):not([disabled]), select, textarea, .dialog-footer button');
    if (target) target.focus();
  }

  function openDialog(dialog, trigger) {
    if (!dialog || dialog.open) return;
    dialog.returnFocus = trigger || document.activeElement;
    dialog.showModal();
    focusFirst(dialog);
  }

  // Copies data-fill-* attributes of the button that opens a shared dialog into it: text of
  // [data-fill=name] elements, and the action of its form.
  function fill(dialog, opener) {
    for (const [key, value] of Object.entries(opener.dataset)) {
      if (!key.startsWith('fill') || key.length === 4) continue;
      const name = key.slice(4).toLowerCase();
      if (name === 'action') {
        const form = dialog.querySelector('form');
        if (form) form.action = value;
      } else {
        $$(`[data-fill="${name}"]`, dialog).forEach((el) => { el.textContent = value; });
        $$(`[name="${name}"]`, dialog).forEach((control) => { control.value = value; });
      }
    }
  }

  function closeMenus(except) {
    $$('details.menu[open]').forEach((menu) => { if (menu !== except) menu.open = false; });
  }

  // A dialog that shows a secret forgets it when it closes: the page keeps only the masked key.
  // A reusable one (reveal) only hides what it showed.
  function forgetSecret(dialog) {
    $$('[data-secret]', dialog).forEach((input) => { input.value = ''; });
    const body = dialog.querySelector('[data-return]');
    const back = body?.dataset.return || location.pathname;
    if (body && 'reusable' in body.dataset) {
      $$('.copy-row', dialog).forEach((row) => { row.hidden = true; });
      $$('[data-copy-status]', dialog).forEach((status) => { status.textContent = ''; });
    } else {
      dialog.remove();
    }
    history.replaceState(null, '', back);
  }

  $$('dialog').forEach((dialog) => {
    dialog.addEventListener('close', () => {
      if (dialog.querySelector('[data-secret]')) forgetSecret(dialog);
      const back = dialog.returnFocus;
      if (back && document.contains(back)) back.focus();
    });
  });

  document.addEventListener('click', (event) => {
    const opener = event.target.closest('[data-open]');
    if (opener) {
      const dialog = document.getElementById(opener.dataset.open);
      if (dialog) {
        event.preventDefault();
        fill(dialog, opener);
        closeMenus();
        openDialog(dialog, opener.closest('details.menu')?.querySelector('summary') || opener);
      }
      return;
    }
    const closer = event.target.closest('[data-close]');
    if (closer) {
      const dialog = closer.closest('dialog');
      if (dialog) dialog.close();
      return;
    }
    const copier = event.target.closest('[data-copy]');
    if (copier) {
      copy(copier);
      return;
    }
    $$('details.menu[open]').forEach((menu) => { if (!menu.contains(event.target)) menu.open = false; });
  });

  $$('details.menu').forEach((menu) => {
    menu.addEventListener('toggle', () => { if (menu.open) closeMenus(menu); });
  });

  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return;
    $$('details.menu[open]').forEach((menu) => {
      menu.open = false;
      menu.querySelector('summary')?.focus();
    });
  });

  // ------------------------------------------------------------------ copy

  async function copy(button) {
    const input = document.getElementById(button.dataset.copy);
    if (!input) return;
    const status = (button.closest('dialog') || document).querySelector('[data-copy-status]');
    let copied = false;
    try {
      await navigator.clipboard.writeText(input.value);
      copied = true;
    } catch (_) {
      input.select();
      copied = document.execCommand && document.execCommand('copy');
    }
    if (status) {
      status.textContent = copied
        ? 'Copied to the clipboard.'
        : 'Could not copy: select the key and copy it by hand.';
    }
    if (copied) {
      button.textContent = 'Copied';
      setTimeout(() => { button.textContent = 'Copy'; }, 2500);
    }
  }

  $$('[data-secret]').forEach((input) => {
    input.addEventListener('focus', () => input.select());
  });

  // ------------------------------------------------------------------ inline validation

  function validIpv4(addr) {
    const parts = addr.split('.');
    return parts.length === 4 && parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
  }

  function validIpv6(addr) {
    if (!/^[0-9a-fA-F:.]+$/.test(addr) || !addr.includes(':')) return false;
    try {
      new URL(`http://[${addr}]/`);
      return true;
    } catch (_) {
      return false;
    }
  }

  function validEntry(entry) {
    const [addr, len, ...rest] = entry.split('/');
    if (rest.length) return false;
    const v6 = addr.includes(':');
    if (!(v6 ? validIpv6(addr) : validIpv4(addr))) return false;
    if (len === undefined) return true;
    return /^[0-9]{1,3}$/.test(len) && Number(len) <= (v6 ? 128 : 32);
  }

  // The element that shows a control's error: the one its aria-describedby names (controls that
  // share one, like a rate limit's number and period, name the same), else `<id>-error`.
  function errorElementFor(control) {
    const ids = (control.getAttribute('aria-describedby') || '').split(/\s+/);
    const id = ids.find((i) => i.endsWith('-error')) || `${control.id}-error`;
    return id ? document.getElementById(id) : null;
  }

  function controlKey(control) {
    return control.id || control.name;
  }

  // Shows or clears a control's error. A message cleared by one control does not clear another
  // control's message in a shared element; a message the server rendered belongs to whichever
  // control is changed first.
  function showFieldError(control, message) {
    const error = errorElementFor(control);
    if (message) control.setAttribute('aria-invalid', 'true');
    else control.removeAttribute('aria-invalid');
    if (!error) return;
    if (message) {
      error.textContent = message;
      error.hidden = false;
      error.dataset.for = controlKey(control);
    } else if (!error.dataset.for || error.dataset.for === controlKey(control)) {
      error.textContent = '';
      error.hidden = true;
      delete error.dataset.for;
    }
    const container = control.closest('.scope-row') || control.closest('.field');
    container?.classList.toggle('has-error', !error.hidden);
  }

  // What is wrong with a control's value, in the dashboard's words: the browser's own messages
  // vary by browser and language, and say nothing of the range.
  function messageFor(control) {
    const v = control.validity;
    const { min, max } = control;
    if (v.customError) return control.validationMessage;
    if (v.valueMissing) return 'This field is required.';
    if (v.badInput) {
      return control.type === 'date' ? 'Enter a whole date, or clear the field.' : 'Enter a whole number.';
    }
    if (v.rangeUnderflow || v.rangeOverflow) {
      if (control.dataset.rangeMessage) return control.dataset.rangeMessage;
      if (min !== '' && max !== '') return `Must be between ${min} and ${max}.`;
      return min !== '' ? `Must be ${min} or more.` : `Must be ${max} or less.`;
    }
    if (v.stepMismatch) return 'Enter a whole number.';
    if (v.typeMismatch && control.type === 'email') return 'Enter an email address, like name@example.com.';
    if (v.tooLong) return `Use at most ${control.maxLength} characters.`;
    return control.validationMessage;
  }

  // Controls the form sends and the browser checks: not those of a part hidden or disabled (the
  // options of another API, a date not chosen).
  function checkedControls(form) {
    return $$('input, textarea, select', form).filter(
      (c) => c.willValidate && !c.closest('[hidden]') && c.type !== 'hidden',
    );
  }

  function checkIpList(textarea) {
    const bad = textarea.value.split(/[\s,]+/).filter(Boolean).filter((e) => !validEntry(e));
    const message = bad.length === 0
      ? ''
      : `${bad.map((b) => `'${b}'`).join(', ')} ${bad.length === 1 ? 'is' : 'are'} not an IPv4/IPv6 address or CIDR block (like 203.0.113.0/24).`;
    // A validity of the script's own, set and cleared on every change, so it never outlives the
    // value it is about.
    textarea.setCustomValidity(message);
    showFieldError(textarea, message);
  }

  $$('[data-validate="ip-list"]').forEach((textarea) => {
    textarea.addEventListener('input', () => checkIpList(textarea));
    textarea.addEventListener('blur', () => checkIpList(textarea));
  });

  // A shown error follows its control's value: gone once the value is right, updated while not.
  function recheck(event) {
    const control = event.target;
    if (!(control instanceof HTMLElement) || !control.form || control.dataset.validate) return;
    if (!control.matches('input, textarea, select')) return;
    const error = errorElementFor(control);
    const showing = control.getAttribute('aria-invalid') === 'true' || (error && !error.hidden);
    if (!showing) return;
    showFieldError(control, control.validity.valid ? '' : messageFor(control));
  }
  document.addEventListener('input', recheck);
  document.addEventListener('change', recheck);

  $$('form').forEach((form) => {
    form.addEventListener('submit', (event) => {
      $$('[data-validate="ip-list"]', form).forEach(checkIpList);
      const invalid = checkedControls(form).filter((c) => !c.validity.valid);
      if (invalid.length) {
        event.preventDefault();
        invalid.forEach((c) => showFieldError(c, messageFor(c)));
        invalid[0].focus();
        return;
      }
      const submit = form.querySelector('button[type=submit]');
      if (submit) setTimeout(() => { submit.disabled = true; }, 0);
    });
  });

  // Back to a page whose form was sent: its buttons work again.
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) $$('button[type=submit]').forEach((b) => { b.disabled = false; });
  });

  // ------------------------------------------------------------------ create dialog

  $$('[data-api-select]').forEach((select) => {
    const sync = () => {
      $$('.api-options', select.form).forEach((options) => {
        const on = options.dataset.api === select.value;
        options.hidden = !on;
        $$('fieldset', options).forEach((f) => { f.disabled = !on; });
      });
    };
    select.addEventListener('change', sync);
    sync();
  });

  $$('input[name="expires"]').forEach((radio) => {
    radio.addEventListener('change', () => {
      const row = document.getElementById('expires-date-row');
      if (!row) return;
      const on = radio.form.querySelector('input[name="expires"]:checked')?.value === 'date';
      row.hidden = !on;
      const date = row.querySelector('input');
      if (on) date?.focus();
      // Another choice: whatever was wrong with the date, or with the choice, no longer is.
      else if (date) showFieldError(date, '');
    });
  });

  // ------------------------------------------------------------------ reveal (recoverable keys)

  document.addEventListener('click', async (event) => {
    const button = event.target.closest('[data-reveal]');
    if (!button) return;
    const target = document.getElementById(button.dataset.revealTarget);
    const status = document.getElementById(`${button.dataset.revealTarget}-status`);
    button.disabled = true;
    try {
      const res = await fetch(button.dataset.reveal, {
        credentials: 'same-origin',
        headers: { Accept: 'application/json' },
        cache: 'no-store',
      });
      const body = await res.json();
      if (!res.ok) throw new Error(body.detail || `HTTP ${res.status}`);
      target.value = body.key;
      target.closest('[hidden]')?.removeAttribute('hidden');
      if (status) status.textContent = 'Revealed. This reveal is recorded in the audit log.';
    } catch (err) {
      if (status) status.textContent = `Could not reveal the key: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  });

  // ------------------------------------------------------------------ filters

  $$('[data-autosubmit]').forEach((control) => {
    control.addEventListener('change', () => control.form.requestSubmit());
  });

  // ------------------------------------------------------------------ search

  // A whole key typed into the search would put it in the address (and the server refuses such
  // addresses, marking the key exposed): its prefix finds the key just as well.
  const WHOLE_KEY = /^([a-z0-9]+[_-](?:[a-z0-9]+[_-])?)([0-9a-f]{12})[0-9a-f]{56}$/;
  $$('input[type=search][name=q]').forEach((input) => {
    input.form?.addEventListener('submit', () => {
      const m = input.value.trim().match(WHOLE_KEY);
      if (m) input.value = m[1] + m[2];
    });
  });

  // ------------------------------------------------------------------ selecting keys

  const bulkItems = () => $$('[data-bulk-item]').filter((c) => !c.disabled);

  function syncBulk() {
    const items = bulkItems();
    const chosen = items.filter((c) => c.checked);
    const all = document.querySelector('[data-bulk-all]');
    if (all) {
      all.checked = items.length > 0 && chosen.length === items.length;
      all.indeterminate = chosen.length > 0 && chosen.length < items.length;
    }
    $$('[data-bulk-count]').forEach((el) => {
      el.textContent = chosen.length === 0
        ? 'Select keys to revoke several at once.'
        : `${chosen.length} selected`;
    });
    $$('[data-bulk-open]').forEach((b) => { b.disabled = chosen.length === 0; });
    items.forEach((c) => c.closest('tr')?.classList.toggle('selected', c.checked));
  }

  $$('[data-bulk-all]').forEach((all) => {
    all.hidden = false;
    all.addEventListener('change', () => {
      bulkItems().forEach((c) => { c.checked = all.checked; });
      syncBulk();
    });
  });
  $$('[data-bulk-item]').forEach((c) => c.addEventListener('change', syncBulk));
  if (document.querySelector('[data-bulk-item]')) syncBulk();

  // One confirmation, naming how many keys and which.
  $$('[data-bulk-open]').forEach((button) => {
    button.addEventListener('click', (event) => {
      const dialog = document.getElementById(button.dataset.bulkOpen);
      const form = dialog?.querySelector('[data-bulk-form]');
      const chosen = bulkItems().filter((c) => c.checked);
      if (!form || chosen.length === 0) return;
      event.preventDefault();
      $$('input[name=id]', form).forEach((i) => i.remove());
      const list = form.querySelector('[data-bulk-names]');
      list.replaceChildren();
      chosen.forEach((c) => {
        const id = document.createElement('input');
        id.type = 'hidden';
        id.name = 'id';
        id.value = c.value;
        form.appendChild(id);
        const li = document.createElement('li');
        const name = document.createElement('strong');
        name.textContent = c.dataset.name;
        const prefix = document.createElement('code');
        prefix.className = 'prefix';
        prefix.textContent = c.dataset.prefix;
        li.append(name, ' ', prefix);
        list.appendChild(li);
      });
      const count = chosen.length === 1 ? '1 key' : `${chosen.length} keys`;
      form.querySelector('[data-bulk-fill=count]').textContent = count;
      form.querySelector('[data-bulk-fill=submit]').textContent = `Revoke ${count}`;
      openDialog(dialog, button);
    });
  });

  // ------------------------------------------------------------------ scope editor

  function renumberScopes(editor) {
    $$('.scope-row', editor.querySelector('[data-scope-rows]')).forEach((row, i) => {
      const [name, description] = $$('input', row);
      name.setAttribute('aria-label', `Name of scope ${i + 1}`);
      description.setAttribute('aria-label', `What scope ${i + 1} allows`);
      row.querySelector('[data-scope-remove]')?.setAttribute('aria-label', `Remove scope ${i + 1}`);
    });
  }

  $$('[data-scope-editor]').forEach((editor) => {
    const rows = editor.querySelector('[data-scope-rows]');
    const template = editor.querySelector('template[data-scope-template]');
    const add = editor.querySelector('[data-scope-add]');
    // A blank row waits at the end for pages without the script; with it, rows are added on demand.
    const last = rows.lastElementChild;
    if (last && rows.children.length > 1 && $$('input', last).every((i) => !i.value)) last.remove();
    $$('[data-scope-remove]', editor).forEach((b) => { b.hidden = false; });
    add.hidden = false;
    add.addEventListener('click', () => {
      const row = template.content.firstElementChild.cloneNode(true);
      row.querySelector('[data-scope-remove]').hidden = false;
      const error = row.querySelector('.field-error');
      const errorId = `${editor.querySelector('legend')?.id || 'scope'}-new-${Date.now()}`;
      error.id = errorId;
      row.querySelector('input').setAttribute('aria-describedby', errorId);
      rows.appendChild(row);
      renumberScopes(editor);
      row.querySelector('input').focus();
    });
    editor.addEventListener('click', (event) => {
      const remove = event.target.closest('[data-scope-remove]');
      if (!remove) return;
      const row = remove.closest('.scope-row');
      const next = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      renumberScopes(editor);
      (next?.querySelector('input') || add).focus();
    });
  });

  // ------------------------------------------------------------------ dialogs open at load

  $$('dialog[data-autoopen]').forEach((dialog) => openDialog(dialog));
  // ------------------------------------------------------------------ live last use

  // The keys list's "Last used" column, refreshed every few seconds without a reload (only
  // while the page is visible). Without the script it shows what it was when the page loaded.
  const lastUsed = $$('[data-last-used]');
  if (lastUsed.length) {
    const ids = lastUsed.map((cell) => cell.dataset.lastUsed).join(',');
    const refresh = async () => {
      if (document.hidden) return;
      try {
        const res = await fetch(`/keys/last-used?ids=${encodeURIComponent(ids)}`, {
          credentials: 'same-origin',
          headers: { Accept: 'application/json' },
        });
        if (!res.ok) return;
        const uses = await res.json();
        lastUsed.forEach((cell) => {
          const use = uses[cell.dataset.lastUsed];
          if (!use) return;
          let time = cell.querySelector('time');
          if (!time) {
            cell.textContent = '';
            time = document.createElement('time');
            cell.appendChild(time);
          }
          time.dateTime = use.at;
          time.title = use.title;
          time.textContent = use.text;
        });
      } catch (_) {
        // The next refresh tries again.
      }
    };
    setInterval(refresh, 5000);
  }
})();
