/**
 * jupyterhub-civis "Share…": publish a snapshot link of the current notebook.
 *
 * One command (File menu, notebook toolbar, command palette) saves the notebook,
 * asks for audience / expiry / title, and publishes it through this server's
 * `civis/shares/publish` endpoint (the first time a new link, then new versions of
 * the same link); the answer is the link, with a Copy button.
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
import { buildShareRequest, FormValues, ShareRequest } from './request';
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

class ShareForm extends Widget {
  private users = input('civis-share-users', 'text', 'users, comma-separated');
  private groups = input('civis-share-groups', 'text', 'groups, comma-separated');
  private everyone = input('civis-share-everyone', 'checkbox');
  private expires = input('civis-share-expires', 'date');
  private titleInput = input('civis-share-title', 'text', 'title (default: the file name)');

  constructor() {
    super();
    this.node.append(
      field('Users', this.users),
      field('Groups', this.groups),
      field('Everyone who can log in to this hub ', this.everyone),
      field('Expires (optional)', this.expires),
      field('Title', this.titleInput)
    );
  }

  getValue(): FormValues {
    return {
      users: this.users.value,
      groups: this.groups.value,
      everyone: this.everyone.checked,
      expires: this.expires.value,
      title: this.titleInput.value
    };
  }
}

async function publish(request: ShareRequest): Promise<{ url: string; version: number }> {
  const settings = ServerConnection.makeSettings();
  const url = settings.baseUrl.replace(/\/?$/, '/') + 'civis/shares/publish';
  const response = await ServerConnection.makeRequest(
    url,
    { method: 'POST', body: JSON.stringify(request) },
    settings
  );
  const data = await response.json();
  if (!response.ok) {
    throw new Error(data.message || response.statusText);
  }
  return data;
}

async function share(app: JupyterFrontEnd, panel: NotebookPanel): Promise<void> {
  await panel.context.save();
  const asked = await showDialog({
    title: 'Share a snapshot of this notebook',
    body: new ShareForm(),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Share' })]
  });
  if (!asked.button.accept || !asked.value) {
    return;
  }
  let published: { url: string; version: number };
  try {
    published = await publish(buildShareRequest(panel.context.path, asked.value));
  } catch (error) {
    await showErrorMessage('Share…', error as Error);
    return;
  }
  const link = new URL(published.url, window.location.origin).href;
  const body = document.createElement('div');
  const shown = input('civis-share-link');
  shown.readOnly = true;
  shown.value = link;
  body.append(`Version ${published.version} is published at:`, shown);
  const done = await showDialog({
    title: 'Shared',
    body: new Widget({ node: body }),
    buttons: [Dialog.okButton({ label: 'Copy' }), Dialog.cancelButton({ label: 'Close' })]
  });
  if (done.button.accept) {
    Clipboard.copyToSystem(link);
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
      caption: 'Publish a snapshot link of this notebook',
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
