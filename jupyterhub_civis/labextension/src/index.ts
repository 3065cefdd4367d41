/**
 * jupyterhub-civis "Share…": publish a snapshot link of the current notebook.
 *
 * One command (File menu, notebook toolbar, command palette) saves the notebook,
 * asks for audience / expiry / title, and publishes it through this server's
 * `civis/shares/publish` endpoint (the first time a new link, then new versions of
 * the same link); the answer is the link, with a Copy button. Choosing "Report" instead
 * of "Snapshot" creates a report link (`civis/reports/publish`): the notebook re-run on
 * a cron schedule, on demand and/or on view, every run kept. Where this server may be
 * shared live (JupyterHub >= 5 with live shares: `GET civis/shares/live`), the dialog
 * also offers "Live (share this running server)": a JupyterHub share code through
 * `POST civis/shares/live`, listed and revocable on the service's "Shared by me".
 *
 * "Queries (live status)" (File menu, command palette) opens this server's query-cache
 * status page in a new browser tab.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import {
  Clipboard,
  Dialog,
  ICommandPalette,
  showDialog,
  showErrorMessage,
  ToolbarButton
} from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';
import { IMainMenu } from '@jupyterlab/mainmenu';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';
import {
  buildLiveRequest,
  buildReportRequest,
  buildShareRequest,
  FormValues,
  LiveRequest,
  ReportRequest,
  ReportValues,
  ShareRequest
} from './request';
import { statusPageUrl } from './status';

const COMMAND = 'jupyterhub-civis:share';
const STATUS_COMMAND = 'jupyterhub-civis:query-status';

function field(label: string, input: HTMLInputElement): HTMLElement {
  const row = document.createElement('label');
  row.className = 'civis-share-field';
  row.style.display = 'block';
  row.style.marginBottom = '0.5em';
  row.append(label, document.createElement('br'), input);
  return row;
}

function input(id: string, type = 'text', placeholder = ''): HTMLInputElement {
  const el = document.createElement('input');
  el.id = id;
  el.type = type;
  el.placeholder = placeholder;
  if (type !== 'checkbox') {
    el.style.width = '100%';
  }
  return el;
}

function choice(name: string, value: string, label: string, checked = false): HTMLElement {
  const radio = input(`civis-share-kind-${value}`, 'radio');
  radio.name = name;
  radio.value = value;
  radio.checked = checked;
  const row = document.createElement('label');
  row.style.marginRight = '1em';
  row.append(radio, ` ${label}`);
  return row;
}

type Kind = 'snapshot' | 'report' | 'live';

interface Asked {
  kind: Kind;
  form: FormValues;
  report: ReportValues;
}

class ShareForm extends Widget {
  private users = input('civis-share-users', 'text', 'users, comma-separated');
  private groups = input('civis-share-groups', 'text', 'groups, comma-separated');
  private everyone = input('civis-share-everyone', 'checkbox');
  private expires = input('civis-share-expires', 'date');
  private titleInput = input('civis-share-title', 'text', 'title (default: the file name)');
  private cron = input('civis-report-cron', 'text', 'cron, e.g. 0 7 * * 1-5 (empty: no schedule)');
  private timezone = input('civis-report-timezone', 'text', 'time zone, e.g. Europe/Paris');
  private audienceRefreshes = input('civis-report-audience-refreshes', 'checkbox');
  private refreshAfter = input('civis-report-refresh-after', 'number', 'minutes (empty: never)');
  private kinds = document.createElement('div');
  private reportFields = document.createElement('fieldset');
  private expiresField: HTMLElement;

  constructor(liveAvailable: boolean) {
    super();
    this.timezone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    this.kinds.id = 'civis-share-kind';
    this.kinds.style.marginBottom = '0.5em';
    this.kinds.append(
      choice('civis-share-kind', 'snapshot', 'Snapshot (this notebook as saved)', true),
      choice('civis-share-kind', 'report', 'Report (re-run to stay fresh)')
    );
    if (liveAvailable) {
      const live = choice('civis-share-kind', 'live', 'Live (share this running server)');
      live.title = 'Anyone you give the link to works in this server, as you, until it expires';
      this.kinds.append(live);
    }
    this.reportFields.id = 'civis-report-fields';
    this.reportFields.hidden = true;
    this.reportFields.append(
      field('Schedule (cron)', this.cron),
      field('Time zone of the schedule', this.timezone),
      field('The audience may also refresh it on demand ', this.audienceRefreshes),
      field('Refresh on view when older than (minutes)', this.refreshAfter)
    );
    this.expiresField = field('Expires (optional)', this.expires);
    this.kinds.addEventListener('change', () => {
      const kind = this.kind();
      this.reportFields.hidden = kind !== 'report';
      // a share code admits whoever accepts it; the audience fields do not apply
      for (const el of [this.users, this.groups, this.everyone]) {
        el.disabled = kind === 'live';
      }
    });
    this.node.append(
      this.kinds,
      field('Users', this.users),
      field('Groups', this.groups),
      field('Everyone who can log in to this hub ', this.everyone),
      this.expiresField,
      field('Title', this.titleInput),
      this.reportFields
    );
  }

  private kind(): Kind {
    const chosen = this.kinds.querySelector<HTMLInputElement>('input:checked')?.value;
    return chosen === 'report' || chosen === 'live' ? chosen : 'snapshot';
  }

  getValue(): Asked {
    return {
      kind: this.kind(),
      form: {
        users: this.users.value,
        groups: this.groups.value,
        everyone: this.everyone.checked,
        expires: this.expires.value,
        title: this.titleInput.value
      },
      report: {
        cron: this.cron.value,
        timezone: this.timezone.value,
        onDemand: this.audienceRefreshes.checked ? 'audience' : 'owner',
        refreshAfterMinutes: this.refreshAfter.value
      }
    };
  }
}

async function call(path: string, init: RequestInit = {}): Promise<any> {
  const settings = ServerConnection.makeSettings();
  const url = settings.baseUrl.replace(/\/?$/, '/') + path;
  const response = await ServerConnection.makeRequest(url, init, settings);
  const data = await response.json();
  if (!response.ok) {
    throw new Error(data.message || response.statusText);
  }
  return data;
}

/** Whether this server may be shared live; false when the answer does not come. */
async function liveAvailable(): Promise<boolean> {
  try {
    return Boolean((await call('civis/shares/live')).available);
  } catch {
    return false;
  }
}

async function showLink(title: string, text: string, link: string): Promise<void> {
  const body = document.createElement('div');
  const shown = input('civis-share-link');
  shown.readOnly = true;
  shown.value = link;
  body.append(text, shown);
  const done = await showDialog({
    title,
    body: new Widget({ node: body }),
    buttons: [Dialog.okButton({ label: 'Copy' }), Dialog.cancelButton({ label: 'Close' })]
  });
  if (done.button.accept) {
    Clipboard.copyToSystem(link);
  }
}

function post(path: string, request: ShareRequest | ReportRequest | LiveRequest): Promise<any> {
  return call(path, { method: 'POST', body: JSON.stringify(request) });
}

async function share(app: JupyterFrontEnd, panel: NotebookPanel): Promise<void> {
  const [, canShareLive] = await Promise.all([panel.context.save(), liveAvailable()]);
  const asked = await showDialog({
    title: 'Share this notebook',
    body: new ShareForm(canShareLive),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Share' })]
  });
  if (!asked.button.accept || !asked.value) {
    return;
  }
  const { kind, form, report } = asked.value;
  const path = panel.context.path;
  const absolute = (url: string) => new URL(url, window.location.origin).href;
  try {
    if (kind === 'live') {
      const live = await post('civis/shares/live', buildLiveRequest(form));
      await showLink('Shared live', 'Whoever accepts this link works in this server:', absolute(live.accept_url));
    } else if (kind === 'report') {
      const created = await post('civis/reports/publish', buildReportRequest(path, form, report));
      await showLink(
        'Shared',
        'The report is at (its first run starts on schedule or when refreshed):',
        absolute(created.url)
      );
    } else {
      const published = await post('civis/shares/publish', buildShareRequest(path, form));
      await showLink('Shared', `Version ${published.version} is published at:`, absolute(published.url));
    }
  } catch (error) {
    await showErrorMessage('Share…', error as Error);
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterhub-civis-share:plugin',
  description: 'Share… a snapshot link of a notebook (jupyterhub-civis).',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, IMainMenu],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    mainMenu: IMainMenu | null
  ) => {
    app.commands.addCommand(COMMAND, {
      label: 'Share…',
      caption: 'Publish a snapshot or report link of this notebook',
      isEnabled: () => tracker.currentWidget !== null,
      execute: async () => {
        const panel = tracker.currentWidget;
        if (panel) {
          await share(app, panel);
        }
      }
    });
    palette?.addItem({ command: COMMAND, category: 'Notebook Operations' });
    mainMenu?.fileMenu.addGroup([{ command: COMMAND }], 100);

    // the query cache's live status page of this server, in a new browser tab
    app.commands.addCommand(STATUS_COMMAND, {
      label: 'Queries (live status)',
      caption: "This server's warehouse queries: running, finished, cached; Cancel",
      execute: () => {
        window.open(statusPageUrl(PageConfig.getBaseUrl()), '_blank', 'noopener');
      }
    });
    palette?.addItem({ command: STATUS_COMMAND, category: 'Civis' });
    mainMenu?.fileMenu.addGroup([{ command: STATUS_COMMAND }], 101);
    app.docRegistry.addWidgetExtension('Notebook', {
      createNew: (panel: NotebookPanel) => {
        const button = new ToolbarButton({
          className: 'civis-share-button',
          label: 'Share…',
          tooltip: 'Publish a snapshot link of this notebook',
          onClick: () => {
            tracker.currentWidget === panel
              ? void app.commands.execute(COMMAND)
              : void share(app, panel);
          }
        });
        panel.toolbar.addItem('civis-share', button);
        return button;
      }
    });
  }
};

export default plugin;
